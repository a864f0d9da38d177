FROM busybox
RUN mkdir /d
COPY hello.txt /d
COPY dir /d
