FROM busybox
RUN mkdir -p /d/sub /realsub && echo orig > /target && ln -s /target /d/a.txt && echo h > /hl && ln /hl /d/hl-other
COPY dir /d
COPY hello.txt /d/hl-other
RUN mkdir /real2 && ln -s /real2 /dirlink
COPY dir /dirlink
