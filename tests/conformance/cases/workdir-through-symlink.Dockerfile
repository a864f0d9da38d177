FROM busybox
RUN mkdir /real && ln -s /real /lnk
WORKDIR /lnk/sub
RUN pwd > /out && touch here
