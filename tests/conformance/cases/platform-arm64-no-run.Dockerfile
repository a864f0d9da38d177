FROM busybox
ARG TARGETPLATFORM
COPY hello.txt /
ENV P=$TARGETPLATFORM
#conformance: args=--platform linux/arm64
