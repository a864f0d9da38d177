FROM busybox
COPY --chown=app:app hello.txt /n/
COPY --chown=app dir /n2/
COPY --chown=:app exec.sh /n3/
