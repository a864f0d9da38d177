FROM busybox
RUN true
RUN touch /tmp
RUN chmod 750 /home && chown 1000 /bin
