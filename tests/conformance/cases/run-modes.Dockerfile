FROM busybox
RUN echo x > /suid && chmod 4755 /suid && mkdir /sticky && chmod 1777 /sticky && echo g > /sgid && chmod 2711 /sgid
