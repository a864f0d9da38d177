FROM busybox
COPY dir /dir
RUN rm -r /dir/sub && rm /dir/a.txt
