FROM busybox
COPY --chown=app:app hello.txt /new/parents/here/
COPY --chown=app dir /other/new/
