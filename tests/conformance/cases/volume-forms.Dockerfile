FROM busybox
RUN mkdir /data && echo before > /data/file
VOLUME /data
VOLUME ["/v1", "/v2"]
RUN echo after > /data/file
