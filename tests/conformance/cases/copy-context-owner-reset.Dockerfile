FROM busybox
COPY owned.txt /
