FROM busybox AS base
WORKDIR /a/b/
RUN pwd > /out1
WORKDIR //dbl//slash
RUN pwd > /out2
WORKDIR ./rel/
COPY hello.txt .
WORKDIR /inherited/
FROM base
RUN pwd > /out3
COPY hello.txt ./
