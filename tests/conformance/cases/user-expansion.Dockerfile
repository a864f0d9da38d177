FROM busybox
ARG U=nobody
USER $U
RUN id -u > /tmp/uid
