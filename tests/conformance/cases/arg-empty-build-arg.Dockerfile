FROM busybox
ARG E=default
ARG F
RUN echo "[$E][${F:-unset}]" > /out
#conformance: args=--build-arg E= --build-arg F=
