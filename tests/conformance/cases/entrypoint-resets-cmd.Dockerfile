FROM busybox
CMD ["first"]
ENTRYPOINT ["/bin/echo"]
