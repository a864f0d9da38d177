FROM busybox
ENV G=app U=nobody
USER $U:$G
RUN id > /tmp/id
