FROM busybox
RUN mkdir /target && ln -s /target /ld
COPY hello.txt /ld/
