FROM busybox
USER 1000:1000
RUN touch /tmp/u && id > /tmp/id
