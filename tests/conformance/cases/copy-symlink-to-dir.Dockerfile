FROM busybox
COPY link-to-dir /ld
