FROM busybox
CMD [echo, hi]
ENTRYPOINT ["unterminated"
