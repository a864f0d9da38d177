FROM busybox
COPY --chown=:1234 hello.txt /g1
COPY --chown=1000:app hello.txt /g2
COPY --chown=app:65534 hello.txt /g3
COPY --chown=0 dir /g4/
