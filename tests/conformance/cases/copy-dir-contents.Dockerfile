FROM busybox
COPY dir /dst
