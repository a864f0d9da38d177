FROM busybox
RUN echo h > /h1 && ln /h1 /h2 && mkdir /hd && ln /h1 /hd/h3
