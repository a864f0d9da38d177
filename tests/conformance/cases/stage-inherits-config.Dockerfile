FROM busybox AS base
ENV E=1
WORKDIR /wd
USER 1000
LABEL l=1
FROM base
RUN pwd > /tmp/pwd
