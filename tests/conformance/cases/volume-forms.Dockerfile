FROM busybox
VOLUME /data
VOLUME ["/v1", "/v2"]
RUN echo after > /data/file
