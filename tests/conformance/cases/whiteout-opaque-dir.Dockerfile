FROM busybox
RUN mkdir -p /d/sub && echo 1 > /d/sub/a && echo 2 > /d/b
RUN rm -rf /d && mkdir /d && echo 3 > /d/c
