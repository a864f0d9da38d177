FROM busybox
WORKDIR rel
RUN pwd > /out
