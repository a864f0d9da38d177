FROM busybox
ENV HTTP_PROXY=http://declared:1 no_proxy=.local
ARG HTTPS_PROXY
RUN echo "$HTTP_PROXY $HTTPS_PROXY" > /out
#conformance: args=--build-arg HTTPS_PROXY=http://cli:2
