FROM busybox
RUN echo f > /x
RUN rm /x && mkdir /x && echo in > /x/in
