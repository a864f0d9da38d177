FROM busybox
ARG D=/wd
WORKDIR ${D}/sub
COPY hello.txt ${D}/copied
