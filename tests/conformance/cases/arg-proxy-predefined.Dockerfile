FROM busybox
RUN echo "proxy=$HTTP_PROXY np=$no_proxy" > /out
ARG OTHER
RUN echo "other=$OTHER" > /out2
#conformance: args=--build-arg HTTP_PROXY=http://127.0.0.1:1 --build-arg no_proxy=localhost --build-arg OTHER=o
