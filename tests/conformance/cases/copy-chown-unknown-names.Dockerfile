FROM busybox
# docker build's BuildKit (and current BuildKit's readUser) does not fail on unknown names:
# an unknown user is 0:0, an unknown group keeps the user's gid
COPY --chown=nosuchuser hello.txt /u1
COPY --chown=app:nosuchgroup hello.txt /u2
COPY --chown=nosuchuser:app hello.txt /u3
ADD --chown=nosuchuser dir /u4/
COPY --chown=1234:nosuchgroup hello.txt /u5
