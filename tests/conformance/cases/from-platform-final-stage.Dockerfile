FROM --platform=linux/arm64 busybox
COPY hello.txt /
ENV X=1
