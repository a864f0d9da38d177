FROM busybox
RUN mkdir -p /t && chown 1000:1000 /t && chmod 700 /t
COPY hello.txt /t/
COPY dir /t/
