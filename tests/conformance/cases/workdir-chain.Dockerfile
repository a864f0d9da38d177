FROM busybox
ENV D=deep
WORKDIR /a/b
WORKDIR c
WORKDIR $D
RUN pwd > /out
