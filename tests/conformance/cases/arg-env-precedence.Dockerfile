FROM busybox
ENV V=env
ARG V=arg
RUN echo $V > /out
