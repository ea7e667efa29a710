-- The default text pipeline, the seed's flow for text: extract the text of
-- plain text, Markdown and HTML files; generate a description of the file
-- with the model named "text-generation"; cut the text into overlapping
-- chunks at sentence or word boundaries and embed every chunk with the model
-- named "text-embedding"; store one document per chunk. Both models are
-- local plugins by default and SageMaker endpoints by config alone.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "text-chunks",
  description = "plain text, Markdown and HTML -> overlapping text chunks with embeddings",
  match = { content_type = { "text/plain", "text/markdown", "text/x-markdown", "text/html" } },
  destination = { collection = "text_chunks", metadata = { type = "text_processing" } },
  handler = function(event)
    -- extract
    local text = mmpipe.tools.text.extract(event)
    local meta = mmpipe.tools.text.metadata(text.text, { format = "plain" })
    local chunks = mmpipe.tools.text.chunk(text.text, { size = 1000, overlap = 100, format = "plain" })
    -- generate
    local about = mmpipe.generate("text-generation", text.text)
    -- embed (all chunks at once: concurrent calls when the model is remote)
    local inputs = {}
    for i, chunk in ipairs(chunks) do inputs[i] = chunk.text end
    local vectors = mmpipe.embed_all("text-embedding", inputs)
    -- store
    local docs = {}
    for i, chunk in ipairs(chunks) do
      docs[i] = {
        text = chunk.text,
        embedding = vectors[i],
        file_url = event.url,
        metadata = {
          chunk_index = chunk.index, char_start = chunk.start, char_stop = chunk.stop,
          format = text.format, invalid_bytes = text.invalid_bytes, embedding_model = "text-embedding",
          file_characters = meta.characters, file_words = meta.words, file_lines = meta.lines,
          file_summary = about.summary, file_keywords = about.keywords,
        },
      }
    end
    return docs
  end,
}
