FROM busybox AS base
WORKDIR /base
FROM base
WORKDIR rel/../rel2
RUN pwd > /out
