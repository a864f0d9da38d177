FROM busybox
COPY dir /d
RUN rm -rf /d/sub && mkdir /d/sub && echo new > /d/sub/new && rm -rf /home && mkdir /home
