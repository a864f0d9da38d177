ARG G=global
ARG H=hidden
FROM busybox
ARG G
RUN echo "$G-$H" > /out
