FROM busybox
COPY hello.txt /a/b/c/
COPY --chown=1000:1000 exec.sh /p/q/r
