FROM busybox
RUN mkdir -p /w && chmod 700 /w && chown 1000:1000 /w
WORKDIR /w
