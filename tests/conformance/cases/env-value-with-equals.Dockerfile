FROM busybox
ENV A=b=c B="x=y z" C=
ENV PATH=$PATH:/extra HOME=/custom
RUN echo "$A|$B|$C|$HOME" > /out
