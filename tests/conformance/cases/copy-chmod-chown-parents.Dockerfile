FROM busybox
COPY --chown=1000:1000 --chmod=0640 dir /dst
COPY --chmod=0700 hello.txt /made/parents/
