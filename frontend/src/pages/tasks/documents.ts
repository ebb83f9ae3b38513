// GraphQL documents shared by the task list, the detail view and the
// create form (all in this folder).
import { graphql } from "../../gql";

export const TaskRowFields = graphql(`
  fragment TaskRowFields on Task {
    id
    type
    priority
    status
    input
    attempts
    maxRetries
    error
    pendingReason
    queuePosition
    createdAt
    updatedAt
    startedAt
    finishedAt
    model {
      id
      name
    }
  }
`);

export const cancelTaskMutation = graphql(`
  mutation CancelTask($id: ID!) {
    cancelTask(id: $id) {
      ...TaskRowFields
    }
  }
`);

export const retryTaskMutation = graphql(`
  mutation RetryTask($id: ID!) {
    retryTask(id: $id) {
      ...TaskRowFields
    }
  }
`);

export const modelChoicesQuery = graphql(`
  query ModelChoices {
    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {
      edges {
        node {
          id
          name
          type
          status
          deletedAt
        }
      }
    }
  }
`);
