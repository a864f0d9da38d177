FROM busybox
ENTRYPOINT /bin/echo ep
CMD ["arg"]
