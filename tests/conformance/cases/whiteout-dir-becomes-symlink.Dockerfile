FROM busybox
RUN mkdir /y && echo a > /y/a
RUN rm -r /y && ln -s /etc /y
