FROM busybox
COPY links /links
