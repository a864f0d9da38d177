FROM busybox
COPY hard /hard
