FROM busybox
ENV D=/envdir/ E=/existing
RUN mkdir /existing
COPY hello.txt $D
COPY hello.txt ${E}
COPY exec.sh ${E}/sub/
COPY dir ${D}nested
