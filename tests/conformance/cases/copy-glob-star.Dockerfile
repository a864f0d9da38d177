FROM busybox
COPY glob/*.txt /g/
