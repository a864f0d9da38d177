FROM busybox
ARG A=1
ENV B=2
RUN echo "$A$B" > /out && env | grep -E "^(A|B)=" | sort >> /out
