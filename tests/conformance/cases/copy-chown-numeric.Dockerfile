FROM busybox
COPY --chown=1000:1000 hello.txt dir /c/
