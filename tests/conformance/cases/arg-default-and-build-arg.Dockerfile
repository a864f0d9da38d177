FROM busybox
ARG X=default
ARG Y
ARG Z=zz
RUN echo "$X-$Y-$Z" > /out
#conformance: args=--build-arg Y=given --build-arg Z=override
