FROM busybox
COPY link-to-hello /x
COPY link-chain /y
