FROM busybox
WORKDIR /
WORKDIR /tmp
WORKDIR rel
WORKDIR /
RUN pwd > /out
