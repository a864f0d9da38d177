FROM busybox
RUN rm /etc/group
