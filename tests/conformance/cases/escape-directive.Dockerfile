# escape=`
FROM busybox
RUN echo one `
    two > /out
ENV P=C:\dir
